"""The notebook face: IPython magics (`magics`), the live monitor and rich displays (`display`),
and the ipywidgets training form (`forms`). Nothing is imported here, so `%load_ext nbsage` loads
only the magics."""
