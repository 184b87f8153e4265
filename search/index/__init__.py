"""The gallery search index, derived from the Template table and rebuildable from it at any time.

- `interface`: the one index interface (search, sync, rebuild, status) and `index_backend()`, the seam where
  another vector engine would plug in;
- `node`: search nodes, the only processes that load an index (`index_load_check`);
- `changes`: the change log written with every template add or remove (the database stays the truth);
- `live`: the FAISS implementation, each search node's in-memory indexes (`get_index()`), kept in step with
  the log;
- `snapshots`: the FAISS layout (half-precision vectors, PQ fast scan, IVF) and the snapshot stream format
  (no Django);
- `store`: snapshots in the Django storage `STORAGES["index"]`, versioned objects that need no lock;
- `erasure`: deleting stored snapshots that hold removed templates.
"""
