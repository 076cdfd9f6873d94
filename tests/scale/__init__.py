"""Scale-out proof: several web instances and workers on one Redis and one PostGIS (issue 8)."""
