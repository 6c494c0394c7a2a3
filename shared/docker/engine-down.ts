/** The docker CLI's own words for an engine it cannot reach (stopped, or its socket gone). */
const ENGINE_UNREACHABLE = /Cannot connect to the Docker daemon|Is the docker daemon running/;

/** ENGINE_DOWN when a docker command failed because the engine does not answer; else no reason of its own. */
export const engineDownReason = (output: string) => (ENGINE_UNREACHABLE.test(output) ? 'ENGINE_DOWN' as const : undefined);
