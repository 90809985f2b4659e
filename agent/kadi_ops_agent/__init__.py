"""The Kadi Ops host agent: standard library only, Python 3.9 or newer.

Built into one zipapp (agent/build.py), installed on the host under its content hash and run as the
Kadi user as `python3 -I -S -u kadi-ops-agent-<hash>.pyz VERB ARGS...` (isolated from the caller's
PYTHON* variables and user site-packages, unbuffered so its lines reach a job's log in order). Every
value arrives as an argument, secrets only on stdin.
"""
