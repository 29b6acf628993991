"""`tally simulate`: a distributor's day driven through the gateway as real parties would
(channels ordering, a warehouse shipping and receiving, customers paying and returning),
then an accuracy report computed from the platform's own APIs and databases.

- plan.py: the day, drawn from a seed (reproducible);
- world.py: the catalog, customers, stock and one OAuth client per customer;
- actors/: the parties (channels, warehouse, customers, operator);
- report.py: the accuracy report (figures from the platform, not from the actors);
- run.py: setup, the actors under a progress bar, quiescence, the report.
"""
