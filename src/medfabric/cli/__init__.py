"""The `medfabric` command line: a thin shell over the Python API, in the style of maprcli.

One module per command family; each parses options, calls the Fabric, and prints the result.
"""
