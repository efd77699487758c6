"""Proof code the runtime never imports: reference-vector verification, the reduced-model self-test,
the fake-tensor dry run, precision studies and the deterministic fills they share."""
