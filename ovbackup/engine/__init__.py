"""The engine client: one request seam (connection), the XML readers and writers, the model, polling,
and one service class per engine service. It never prints and never touches local files."""
