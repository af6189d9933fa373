"""Package boundaries: the supervision library stands on its own."""

from __future__ import annotations

import subprocess
import sys


def test_importing_supervision_pulls_in_no_web_database_or_chat_code() -> None:
    code = (
        "import sys, supervision\n"
        "banned = {'tornado', 'psycopg', 'psycopg_pool', 'alembic', 'chatter', 'web'}\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in banned))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


def test_every_public_name_is_exported_once() -> None:
    import supervision

    assert len(set(supervision.__all__)) == len(supervision.__all__)
    for name in supervision.__all__:
        assert hasattr(supervision, name), name
