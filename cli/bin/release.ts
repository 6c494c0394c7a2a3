#!/usr/bin/env node
import { runBin } from '../cli.js';

runBin('release');
