from benchmark.cli import main

main(prog_name="benchmark")
