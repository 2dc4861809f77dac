"""BasinWatch reference layers, catalogs and the web map builder."""
