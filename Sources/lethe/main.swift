import LetheCLI

await LetheMain.main(Lethe.self)
