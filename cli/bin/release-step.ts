#!/usr/bin/env node
/**
 * `release-step`: carries out one action on one service inside a running release, for the
 * generated migrate.sh. Not an operator verb: release-run holds the lock while it runs.
 */
import { runStep } from '../cli.js';

runStep();
