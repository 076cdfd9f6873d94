"""PostGIS, with a database pool whose check of a lent connection costs no round trip."""
