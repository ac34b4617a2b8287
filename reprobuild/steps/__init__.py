"""Steps that run in-process: unpacking packages and writing dpkg's database."""
