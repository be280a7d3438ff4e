"""The live stream (API.md, "Live stream"): what the writer publishes after commit
(`publish`), the counters behind the stats messages (`stats`), each process's one
subscription per project fanned out to its sockets (`hub`), and the WebSocket consumer
(`consumers`)."""
