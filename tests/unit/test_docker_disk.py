"""Reading `docker system df` and `prune` output as the docker CLI prints it."""

from __future__ import annotations

from app.host.docker_disk import _reclaimed, parse_system_df

DF = "\n".join([
    '{"Active":"2","Reclaimable":"1.06GB (48%)","Size":"2.2GB","TotalCount":"7","Type":"Images"}',
    '{"Active":"2","Reclaimable":"0B (0%)","Size":"12.3kB","TotalCount":"2","Type":"Containers"}',
    '{"Active":"0","Reclaimable":"0B","Size":"0B","TotalCount":"0","Type":"Local Volumes"}',
    '{"Active":"0","Reclaimable":"5.6GB","Size":"5.6GB","TotalCount":"41","Type":"Build Cache"}',
])


def test_system_df_rows():
    rows = {r.kind: r for r in parse_system_df(DF)}
    assert rows["Images"].reclaimable_bytes == 1_060_000_000 and rows["Images"].count == 7
    assert rows["Build Cache"].size_bytes == 5_600_000_000
    assert rows["Local Volumes"].reclaimable_bytes == 0


def test_reclaimed_space():
    assert _reclaimed("Deleted Images:\ndeleted: sha256:ab\n\nTotal reclaimed space: 6.7GB\n") \
        == 6_700_000_000
    assert _reclaimed("Total reclaimed space: 0B\n") == 0
    assert _reclaimed("nothing said") == 0
