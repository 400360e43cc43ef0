"""Running: sweeps and their runner, the result store, experiments and their overrides, the
command line, the cluster executor, reports, figures and costs. The top layer: it may use
everything below it (engine, defences, instruments); nothing below imports it."""
