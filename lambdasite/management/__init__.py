"""The commands that wire several apps together (a worker, the scheduler): the wiring layer's."""
