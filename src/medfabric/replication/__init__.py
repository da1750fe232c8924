"""Data protection across time and fabrics: schedules, the scheduler, mirrors and their transport.

``schedule`` parses rules and computes when they are due; ``scheduler`` runs due jobs in a loop;
``transport`` is the one interface through which a mirror sync talks to a fabric (``local`` is
the in-process implementation); ``changes`` and ``apply`` are the two ends of a sync in the
catalog; ``sync`` drives a sync from one fabric to another. Nothing here checks permissions:
the service layer does, on each fabric.
"""
