"""The gallery search index, derived from the Template table and rebuildable from it at any time.

- `changes`: the change log written with every template add or remove (the database stays the truth);
- `live`: each process's in-memory FAISS indexes, kept in step with the log (`get_index()`);
- `snapshots`: the on-disk snapshot files a process loads instead of rebuilding from the database (no Django:
  it reads and writes files only, so other processes and tools can use it).
"""
