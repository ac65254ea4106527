"""Operations on a gridts InfluxDB: backup, verify, restore and prune (``python -m ops``).

Speaks InfluxDB 2.x's own backup and restore HTTP API (what ``influx backup`` and ``influx
restore`` use), writes one folder per backup with a manifest of every file (size, SHA-256,
counts), and checks a backup completely before a restore writes anything. See adr/0012.
"""
