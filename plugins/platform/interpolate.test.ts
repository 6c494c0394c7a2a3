import { dotenvVariables, interpolate, projectEnvPath, substitutionVariables } from './interpolate.js';

describe("compose's variable substitution", () => {
  const vars = { TAG: '2.1', EMPTY: '', REGISTRY: 'registry.example:5000' };

  test('plain, braced, defaults, alternatives, $$', () => {
    expect(interpolate('app:${TAG}', vars)).toBe('app:2.1');
    expect(interpolate('app:$TAG-x', vars)).toBe('app:2.1-x');
    expect(interpolate('app:${MISSING:-1.0}', vars)).toBe('app:1.0');
    expect(interpolate('app:${EMPTY:-1.0}', vars)).toBe('app:1.0');
    expect(interpolate('app:${EMPTY-1.0}', vars)).toBe('app:');
    expect(interpolate('${REGISTRY:+${REGISTRY}/}app:${TAG}', vars)).toBe('registry.example:5000/app:2.1');
    expect(interpolate('${MISSING:+x}app', vars)).toBe('app');
    expect(interpolate('cost $$5 ${MISSING}', vars)).toBe('cost $5 ');
    expect(interpolate('${MISSING:-${TAG}}', vars)).toBe('2.1');
  });

  test('a required variable that is missing: undefined (compose refuses the file)', () => {
    expect(interpolate('app:${MISSING:?set MISSING}', vars)).toBeUndefined();
    expect(interpolate('app:${EMPTY:?}', vars)).toBeUndefined();
    expect(interpolate('app:${EMPTY?}', vars)).toBe('app:');
    expect(interpolate('app:${TAG:?}', vars)).toBe('app:2.1');
  });

  test('the .env beside the compose file, overridden by the environment compose runs with', () => {
    expect(projectEnvPath('packages/web/compose.yaml')).toBe('packages/web/.env');
    const dotenv = dotenvVariables('# the tag\nTAG=1.4\nexport NAME="my app" # named\nSECRET=\'s$3\'\n');
    expect(dotenv).toEqual({ TAG: '1.4', NAME: 'my app', SECRET: 's$3' });
    expect(substitutionVariables(dotenv, { TAG: '9', UNSET: undefined }, { IMAGE: 'x:1' })).toEqual({ TAG: '9', NAME: 'my app', SECRET: 's$3', IMAGE: 'x:1' });
    expect(dotenvVariables(undefined)).toEqual({});
  });
});
