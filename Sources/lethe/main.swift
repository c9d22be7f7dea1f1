import LetheCLI

await LetheMain.main()
