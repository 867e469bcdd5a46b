from services.retrainer.app import main

main()
