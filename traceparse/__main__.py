from traceparse.cli import main

main()
