"""Import-boundary tests: only the tool server/client modules import mcp."""

from __future__ import annotations

import subprocess
import sys


def test_agent_modules_except_server_client_do_not_import_mcp() -> None:
    """Importing the agent package, tools, loaders, judge and scripted server loads no mcp."""
    code = (
        "import sys\n"
        "import agent, agent.tasks, agent.judge\n"
        "import agent.scripted_server, bench.research.tool_latency\n"
        "import agent.tools.search, agent.tools.readers\n"
        "import agent.tools.math_eval, agent.tools.sandbox, agent.tools.web\n"
        "import agent.tools.config\n"
        "bad = [m for m in ('mcp', 'fastapi', 'mlflow', 'torch') if m in sys.modules]\n"
        "assert not bad, bad\n"
        "import agent.tools.client\n"
        "assert 'mcp' in sys.modules\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
