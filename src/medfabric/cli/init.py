"""`medfabric init`: create a fabric in $MEDFABRIC_HOME (or -home)."""

from __future__ import annotations

from pathlib import Path

import click

from medfabric.cli.common import MaprCommand, emit, fail, json_option, opt


@click.command("init", cls=MaprCommand)
@opt("name", help="The fabric's name (default my.fabric).")
@opt("datadir", multiple=True, help="A data directory; repeat for several (each may be its own disk).")
@opt("home", help="Where the fabric lives (default $MEDFABRIC_HOME or ~/.medfabric).")
@opt("catalog", help="Catalog URL: sqlite:///PATH (default, in the home) or postgresql://user@host/db.")
@opt(
    "encryptcatalog",
    is_flag=True,
    help="Encrypt the embedded catalog (SQLCipher); its key goes to <home>/keys.",
)
@opt("s3endpoint", help="Keep data in an S3-compatible store at this endpoint (http://host:port).")
@opt("s3bucket", default="medfabric", show_default=True, help="The bucket for -s3endpoint.")
@opt("s3prefix", default="", help="A key prefix inside the bucket.")
@opt("s3accesskey", envvar="AWS_ACCESS_KEY_ID", help="Access key (or AWS_ACCESS_KEY_ID).")
@opt("s3secretkey", envvar="AWS_SECRET_ACCESS_KEY", help="Secret key (or AWS_SECRET_ACCESS_KEY).")
@opt("s3region", default="us-east-1", show_default=True)
@json_option
def init(
    encryptcatalog: bool,
    name: str | None,
    datadir: tuple[str, ...],
    home: str | None,
    catalog: str | None,
    s3endpoint: str | None,
    s3bucket: str,
    s3prefix: str,
    s3accesskey: str | None,
    s3secretkey: str | None,
    s3region: str,
    json: bool,
) -> None:
    """Create a fabric: a config file, the catalog, data directories and the root volume.

    Example: medfabric init -name hospital.fabric -datadir /disk1/mf -datadir /disk2/mf
    """
    from medfabric.config import S3Config
    from medfabric.errors import MedfabricError
    from medfabric.service.fabric import init_fabric

    s3 = S3Config(s3endpoint, s3bucket, s3prefix, s3accesskey, s3secretkey, s3region) if s3endpoint else None
    try:
        fabric = init_fabric(
            home,
            name=name,
            datadirs=[Path(d) for d in datadir] or None,
            catalog_url=catalog,
            encrypt_catalog=encryptcatalog,
            s3=s3,
            interface="cli",
        )
    except MedfabricError as error:
        raise SystemExit(fail(error, json)) from None
    with fabric:
        document = {
            "name": fabric.name,
            "id": fabric.config.fabric_id,
            "home": str(fabric.config.home),
            "catalog": fabric.catalog.safe_url,
            "admin": fabric.principal.name,
            "storage": [backend.uri for backend in fabric.store.backends.values()],
        }
    emit(
        json,
        [document],
        f"Created fabric {document['name']} at {document['home']} (administrator: {document['admin']})",
    )
