"""The notebook face: IPython magics (`magics`, `data_magics`, `processing_magics`, their lines read by
`parsing` with the grammar the CLI shares, nbsage.arguments), the live monitor and rich displays
(`display`), and the ipywidgets training form (`forms`). Nothing is imported here, so `%load_ext
nbsage` loads only the magics."""
