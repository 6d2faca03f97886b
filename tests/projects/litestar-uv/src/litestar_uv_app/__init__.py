"""imgtool sample: a Litestar app in a src layout."""
