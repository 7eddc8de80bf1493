"""What a sweep will cost, before it starts, in one room: ``probe`` (each rate timed on this
machine, on the code the points run), ``load`` (how busy other work kept the cores meanwhile),
``history`` (what the store's finished runs teach), ``model`` (every point's seconds and the
schedule on ``--jobs`` slots), ``words`` (where each figure came from, the dry run's table),
``alternatives`` (what would make a long sweep feasible), and ``estimate``, which runs them in
that order and returns the ``Cost`` a sweep prints and logs."""
