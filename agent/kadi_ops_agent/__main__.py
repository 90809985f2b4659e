"""Command dispatch: `python3 kadi-ops-agent.pyz COMMAND ARGS...`."""
import importlib
import sys

# Command name -> module (each module has main(argv) -> int | None).
COMMANDS = {
    'copier': 'copier',
    'verify-quick': 'verify_quick',
    'verify-result': 'verify_result',
    'deep-check': 'verify_deep',
    'deep-note': 'verify_deep_note',
    'manifest': 'manifest',
    'list-sets': 'sets',
    'transfer': 'transfer',
    'files-check-answer': 'files_check_answer',
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.stderr.write('kadi-ops agent: unknown command %r; one of: %s\n' % (sys.argv[1] if len(sys.argv) > 1 else '', ', '.join(sorted(COMMANDS))))
        sys.exit(2)
    module = importlib.import_module('kadi_ops_agent.' + COMMANDS[sys.argv[1]])
    sys.exit(module.main(sys.argv[2:]) or 0)


if __name__ == '__main__':
    main()
