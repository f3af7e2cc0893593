export interface ErrorRow { code: string; exits: Set<number>; kinds: Set<string>; messages: string[]; where: string[] }
export function table(): ErrorRow[];
export function renderDoc(rows: ErrorRow[]): string;
export function renderTs(rows: ErrorRow[]): string;
export interface Raise { code: string; kind: string; exit: number; file: string; line: number; message: string }
export function raisesIn(file: string, text: string): { raised: Raise[]; unknown: string[] };
export function scan(): { raised: Raise[]; unknown: string[] };
