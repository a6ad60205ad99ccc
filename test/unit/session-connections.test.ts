import { describe, expect, it } from 'vitest';
import { SessionConnections } from '../../src/lifecycle/session-connections.js';

describe('SessionConnections', () => {
  it('ends every connection of the ended session, and only those, once', () => {
    const connections = new SessionConnections();
    const ended: string[] = [];
    connections.add('sid', 'a', () => ended.push('a1'));
    connections.add('sid', 'a', () => ended.push('a2'));
    connections.add('sid', 'b', () => ended.push('b'));
    connections.add('prefs', 'a', () => ended.push('prefs-a'));

    connections.end('sid', 'a');
    expect(ended.sort()).toEqual(['a1', 'a2']);
    expect(connections.count('sid', 'a')).toBe(0);
    expect(connections.count('sid', 'b')).toBe(1);
    expect(connections.count('prefs', 'a')).toBe(1);

    connections.end('sid', 'a');
    expect(ended).toHaveLength(2);
  });

  it('forgets a connection that removed itself, and keeps telling the others when one throws', () => {
    const connections = new SessionConnections();
    const ended: string[] = [];
    const remove = connections.add('sid', 'a', () => ended.push('removed'));
    connections.add('sid', 'a', () => {
      throw new Error('socket already gone');
    });
    connections.add('sid', 'a', () => ended.push('kept'));
    remove();
    remove();
    expect(connections.count('sid', 'a')).toBe(2);
    expect(() => connections.end('sid', 'a')).not.toThrow();
    expect(ended).toEqual(['kept']);
  });
});
