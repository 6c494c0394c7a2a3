#!/usr/bin/env node
import { runStep } from '../cli.js';

runStep();
