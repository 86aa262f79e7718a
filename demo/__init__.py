"""The demo division: fictional people, forums, measures, data and improvement work.

It builds every app, so it is a package of its own (DESIGN.md §3): the organisation, people,
measures and generated data in :mod:`demo.division`; the improvement work (initiatives along
every path of the workflow, PDSA cycles at the data's step changes, meetings, scores, votes,
scale-up) in :mod:`demo.workflow`, read from ``demo/data/workflow.toml``. Everything goes
through the apps' services.
"""
