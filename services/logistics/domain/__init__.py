"""The rules of deliveries, free of nameko and the database: fleet data, cargo of a shipment,
the trip planner, freight costs and the status machine."""
