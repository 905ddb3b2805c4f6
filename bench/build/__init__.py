"""TVM builds: the harness's Relax rewrites, TVM's default pipeline spelled out pass by pass (with a
tuning database, dlight, fast math), and the built module on a device (`Compiled`, also over RPC)."""
