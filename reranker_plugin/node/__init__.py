"""Node assembly: a local single-node OpenSearch from Maven Central, its verified artifact cache, its asset files."""
