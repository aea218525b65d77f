from auxnas.cli.main import main

main()
