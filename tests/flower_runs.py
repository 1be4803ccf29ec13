"""What the tests that start a real Flower run share."""

# The smallest run config that still runs every phase of the protocol (summaries, targets, rounds, a push).
SMALL_RUN = (
    "num-server-rounds=2 new-activities='jogging' new-activities-round=2 stage1-steps=2 "
    "server-pretrain-epochs=1 source-windows-per-activity=16 windows-per-client=40 local-epochs=1 "
    "sensor-width=64"
)
