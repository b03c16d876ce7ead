"""Tests of the test bed (nixlift_testbed): sandbox hosts, their tools, nixlift-sandbox."""
