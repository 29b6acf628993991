-- One database per service: no service reads another's tables.
CREATE DATABASE tally_gateway;
CREATE DATABASE tally_erp;
CREATE DATABASE tally_wms;
CREATE DATABASE tally_availability;
CREATE DATABASE tally_order_to_ship;
CREATE DATABASE tally_billing;
CREATE DATABASE tally_portal;
