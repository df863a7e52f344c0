"""One module per ``rsd`` subcommand: ``add_arguments(parser)`` and ``run(args) -> int``, thin fronts over the library."""
