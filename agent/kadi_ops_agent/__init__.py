"""The Kadi Ops host agent's Python part: standard library only, Python 3.9 or newer.

Shipped as one zipapp (agent/build.py) beside the bash agent, installed under the same content
hash, and run by it as `python3 -I -S kadi-ops-agent-<hash>.pyz COMMAND ARGS...` (isolated from the
caller's PYTHON* variables and user site-packages, quicker to start). Every value arrives as an
argument, secrets never do.
"""
