from services.recovery.app import main

main()
