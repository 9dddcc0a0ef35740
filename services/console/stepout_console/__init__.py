"""The console for coaches and auditors: a third process that talks to the services only through the
public contract (queries, the output subjects, and publishing `participant.reviewed`)."""
