from swarmopt.cli import main

main()
