/** STORAGE_PATH: the records' files. */
import { treeComponent } from './trees';

export const storage = treeComponent('storage', 'STORAGE_PATH');
