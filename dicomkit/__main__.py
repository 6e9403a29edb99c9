from dicomkit.cli.main import main

main()
