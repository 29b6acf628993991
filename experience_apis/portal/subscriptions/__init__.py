"""Live updates for the portal (decision 0038): GraphQL subscriptions over
graphql-transport-ws at ``/graphql``, fed by one bus reader per process.

- ``updates``: the update types, built from the platform's events;
- ``owners``: an order's customer (shipment events name only the order), cached;
- ``hub``: the bus reader and the fan-out to subscribers, by customer;
- ``connection``: the connection's token (connection_init or the upgrade header);
- ``fields``: the Subscription root;
- ``lifespan``: the reader's task, started with the app.
"""
