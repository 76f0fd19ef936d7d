from bench.cli import console

console()
