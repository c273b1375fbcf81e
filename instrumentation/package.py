# Local files and processes are captured through the standard library, which is always
# present: these instrumentors require no library.
_instruments: tuple[str, ...] = ()
