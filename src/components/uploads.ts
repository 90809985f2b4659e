/** MISC_UPLOADS_PATH: uploads that are not record files. */
import { treeComponent } from './trees';

export const uploads = treeComponent('uploads', 'MISC_UPLOADS_PATH');
