"""Import-boundary tests: only the tool server/client modules import mcp."""

from __future__ import annotations

import subprocess
import sys


def test_agent_modules_except_server_client_do_not_import_mcp() -> None:
    """Importing the agent package, tools, loaders, judge and scripted server loads no mcp."""
    code = (
        "import sys\n"
        "import recsys.agent, recsys.agent.bench_data, recsys.agent.judge\n"
        "import recsys.agent.scripted_server, recsys.agent.tool_latency\n"
        "import recsys.agent.tools.search, recsys.agent.tools.readers\n"
        "import recsys.agent.tools.math_eval, recsys.agent.tools.sandbox, recsys.agent.tools.web\n"
        "import recsys.agent.tools.config\n"
        "bad = [m for m in ('mcp', 'fastapi', 'mlflow', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "import recsys.agent.tools.client\n"
        "assert 'mcp' in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
