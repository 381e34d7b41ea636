"""Code that runs *inside* the sandbox (stdlib only, run by the sandbox's own interpreter): the
trusted harness that judges a program, the runner that hosts the untrusted program, and the wire
format between them. The service copies these files into each sandbox read-only; it never
imports them for their effect (it calls `pump.pump`, the one stdin/output loop of both sides)."""
